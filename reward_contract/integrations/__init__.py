"""Adapters so other trainers can point at an rlpr reward service unchanged: TRL and verl here
(client side); OpenRLHF talks to the service's REST front directly (POST /openrlhf/REWARD)."""
