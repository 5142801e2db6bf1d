"""The service's fronts: gRPC, REST and the OpenRLHF endpoint. They translate, nothing more."""
