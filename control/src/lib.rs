//! The control plane. Not built yet: see the control issue.
