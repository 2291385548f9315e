"""The seed's `gfpp.io`: run manifests, weight checks, and image reading/writing."""
