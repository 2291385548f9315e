"""The seed's `gfpp.restorers`: the Restorer protocol, RestoreResult, and Facet's GFPGAN."""
