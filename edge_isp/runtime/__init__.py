"""The live runtime: camera -> preprocessing -> inference -> annotation -> outputs. No torch."""
