"""Tune for my library: 2SFT/MCIP on the user's own photos, on stored embeddings, reversibly.

Schall et al. ("Optimizing CLIP Models for Image Retrieval with Maintained
Joint-Embedding Alignment") tune CLIP's image side for retrieval and then
realign the text side to the new image space with (pseudo-)captions, so one
embedding per image serves both similar-image and text search. Here both
sides get a small residual head over the frozen model's output
(``heads``): the image head is trained with an ArcFace loss over
pseudo-classes made from the library (augmented views of a sample of
photos, ``views``; clusters of near-duplicates, ``pseudo``), the text head
with InfoNCE against the tuned image vectors of stored captions and label
descriptors (``train``). A guard on held-out photos keeps the heads only if
near-duplicate retrieval improves and text search does not drop
(``guard``); the tuned vectors are then derived from the stored ones and
kept beside them under their own identity (``vectors``), and searching uses
them through ``active.wrap_engine``. ``run`` holds the three commands:
``tune``, ``revert`` and ``tuning_status``.

Training needs torch; applying the heads (search, indexing) is numpy only,
so the packaged app (ONNX Runtime, no torch) searches a tuned library too.
"""
