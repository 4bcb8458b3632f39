"""The changes: kubectl-like verbs (`mutations`), the one gate every change passes (`gate`),
its audit rows (`audit`), the Change models (`models`) and the only writer to the cluster
(`writer`)."""
