"""A local Vast.ai REST API emulator whose rented instances are real containers (see docs/architecture.md)."""
