"""The link library: fetching pages safely, extracting their text, snapshots, bookmarks."""
