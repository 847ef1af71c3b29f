"""Keep a Glue/Athena table of VPC Flow Logs partitioned, event by event."""
