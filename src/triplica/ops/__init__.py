"""Operations: chaos practice, canaries, SLIs (DESIGN.md, role ops)."""
