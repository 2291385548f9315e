#!/bin/sh
# The export image's entry point: build the Triton model repository into FACET_REPOSITORY (a
# volume), the way `make models` builds model_repository/ in a checkout.
#   docker run -v models:/models facet/export:0.1.0                     # every model, --weights auto
#   docker run -v models:/models facet/export:0.1.0 realesrgan_x4plus --force
# Arguments are python -m export's (models, then flags); the repository, the weight source and the
# weights folder come from FACET_REPOSITORY, FACET_WEIGHTS and FACET_WEIGHTS_DIR.
set -eu

repository="${FACET_REPOSITORY:-/models}"
mkdir -p "$repository" "${FACET_WEIGHTS_DIR:-/weights}"

# `python -m export` fills in model files and stamps weight facts into configs that are already in
# the repository; an empty volume has none. The committed tree brings them: every config.pbtxt,
# the GPU and CPU alternatives under configs/ (--model-config-name), the ensembles' version
# folders and the Python-backend sources. Model files already built are not in that tree, so a
# rerun keeps them (and the TensorRT plans built beside them) and re-exports nothing up to date.
cp -R /app/model_repository/. "$repository/"

if [ "$#" -eq 0 ]; then
    set -- all
fi
exec python -m export "$@" \
    --repository "$repository" \
    --weights "${FACET_WEIGHTS:-auto}" \
    --weights-dir "${FACET_WEIGHTS_DIR:-/weights}" \
    --quiet
