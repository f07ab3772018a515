"""TokenMonster rules (family "tokenmonster", ids TM0xx)."""
