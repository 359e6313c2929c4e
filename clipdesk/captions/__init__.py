"""Photo captions: generative (CoCa) and text-only embedding-decoder backends,
CLIP reranking, the library job, keyword search over captions, evaluation."""
