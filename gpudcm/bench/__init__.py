"""`gpudcm bench`: fixed workloads, timed side by side against pydicom and the copy limits (issue #9)."""
