"""What `plan()` measures of an image: its faces (from the server's detector) and its quality
(computed here, numpy/OpenCV only)."""
