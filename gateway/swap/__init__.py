"""Face swapping as the FaceFusion REST API offers it: request parsing, processors, outputs."""
