"""What is kept of an incident: its lifecycle steps in the store (`steps`), its report
(`report`), its Prefect tag (`tags`), and the run's artifacts (`artifacts`)."""
