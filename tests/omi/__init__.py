"""Tests of the Omi client and its models, against the sandbox over real HTTP on 127.0.0.1."""
