"""The nouns the verbs exchange: alerts, snapshots, diagnoses, outcomes, a scenario's call."""
