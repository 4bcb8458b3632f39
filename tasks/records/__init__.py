"""What is kept of an incident: its lifecycle steps in the store (`steps`), its report
(`report`), and the run's artifacts (`artifacts`)."""
