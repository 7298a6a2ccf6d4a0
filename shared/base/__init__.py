"""Building blocks every floor uses: errors that say whether to retry, quantities, times."""
