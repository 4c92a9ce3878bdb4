"""Test harness for the HighWater end-to-end and differential suite."""
