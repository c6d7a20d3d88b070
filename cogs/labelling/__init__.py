"""Discord adapters of the labelling campaign: one small cog per area, shared rendering beside them."""
