"""Generated protobuf and gRPC stubs of proto/rlpr/reward (python proto/generate.py); never edited by hand."""
