"""Words in photos: an optional background OCR pass (RapidOCR on ONNX Runtime), stored and searchable."""
