"""The contract between trainers and the reward service: the one package both import.

It holds the item and result types, the error hierarchy, the proto codec and the gRPC
client, and imports neither `trainer` nor `reward_service`. Importing it loads no rq,
redis, fastapi, uvicorn, torch or transformers (tests/test_architecture.py checks).
"""
