"""Contact book, contact lists (groups) and stop lists. (Being built.)"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
