# Triton for the GPU stack: NVIDIA's tritonserver image (TensorRT, ONNX Runtime and Python
# backends, trtexec) plus the one package the repository's BLS models import and the image lacks:
# `tokenizers` (embed_text, embed_clip_text and caption_blip tokenise inside Triton with
# serving/bls/text_tokenizer.py, clip_tokenizer.py and blip_text.py, copied into their folders).
#   docker build -f deploy/triton.Dockerfile -t facet/triton:0.1.0 .
# Nothing of the repository is baked in: the models are the `models` volume the export fills
# (docker-compose.yml's `triton`), mounted read-only at /models.
FROM nvcr.io/nvidia/tritonserver:24.08-py3

# The pins of requirements/serving.txt: tokenizers and the huggingface-hub it requires (whose
# from_pretrained is never called, so nothing is downloaded at run time). Both publish wheels
# for the image's Python 3.10; the import check fails the build if the wheel does not load.
RUN python3 -m pip install --no-cache-dir --disable-pip-version-check \
        tokenizers==0.23.3 huggingface-hub==2.4.0 \
    && python3 -c "import tokenizers; print('tokenizers', tokenizers.__version__)"

# No USER: the image's default user is kept, as NVIDIA ships it. Triton needs no root
# privileges (GPU access comes from the NVIDIA Container Toolkit, the repository is mounted
# read-only and the server writes only its logs), so where a policy demands a non-root user add
# `USER triton-server`, the unprivileged account the image creates for that purpose.
