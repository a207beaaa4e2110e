"""Pieces the pages share (the task button and follower, cached engine and models, Compare's attention and
edit sections): not pages themselves, so that `pages/` reads as the list of pages."""
