"""Statistics used by several analyses: robust trends (Theil-Sen) and peak distributions (Gumbel)."""
