"""The top floor: pages that compose every app (home, the leads list, the lead page, handing leads over).

Nothing below imports from here; from here every app is read through its services and models.
"""
