"""The reward service: programmed rewards behind gRPC and REST, fanned out to RQ workers.

    fronts/   gRPC and REST (and the OpenRLHF endpoint); they only translate
    core/     the service: resolve a request once, cache, admission, queue backend, health
    worker/   RQ workers that score chunks in their own process and never fork
    rewards/  one file per reward, one signature, one return type
    ludii/    the Ludii engine: a supervised JVM in a spawned child process
"""
