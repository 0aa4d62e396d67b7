"""Closed forms and predictors: synthetic spectra, random-projection statistics, synthetic landscapes."""
