//! The layer-4 load balancer. Not built yet: see the l4lb issue.
