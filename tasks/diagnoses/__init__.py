"""diagnose_*: pure decisions, snapshot in, Diagnosis / Finding / TriageDecision out; no I/O,
so every rule is a row of a table test."""
