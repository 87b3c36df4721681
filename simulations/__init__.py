"""Deterministic simulation and checkers for paxos-kv."""
