"""Exchange venues: adapters and simulators the engine trades on."""
