"""Contact book, contact lists (groups) and stop lists: one router built from the three in their own files."""

from __future__ import annotations

from fastapi import APIRouter

from . import contacts_http, groups_http, stoplist_http

router = APIRouter()
router.include_router(contacts_http.router)
router.include_router(groups_http.router)
router.include_router(stoplist_http.router)
