"""What a sweep runs: suite files, run specs and derived seeds, validation against the registries,
lr selection between the stages, and the checks of finished runs against the suite."""
