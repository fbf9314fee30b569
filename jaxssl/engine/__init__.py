"""The step and what runs it: state, mesh and sharding, FSDP, the step, evaluation, speed, cadence."""
