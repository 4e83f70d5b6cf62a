"""Configuration a user writes: site profiles and job specs, parsed once into typed objects."""
