"""Acting on recommendations: manifest patches (`patch`), in-place resize plans
(`resize_plan`) and the CI gate (`check`). Library first: the CLI modules only parse and print."""
