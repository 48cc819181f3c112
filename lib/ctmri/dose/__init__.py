"""Dose stage (issue 18): a plan optimised on the CT, recomputed on sCTs (pyRadPlan, the Python matRad); γ via pymedphys."""
