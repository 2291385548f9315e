"""The AI Multimedia Platform's recognition APIs: faces (detect, a consent-first gallery,
recognise), images (CLIP zero-shot classification, COCO objects) and the live camera."""
