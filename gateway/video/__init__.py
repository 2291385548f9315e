"""Video I/O for face swapping: safe probing, decode and encode with PyAV, and a pipelined
frame processor. No model code: the caller passes the transform."""
