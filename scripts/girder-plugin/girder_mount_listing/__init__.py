"""girder-mount-listing: a folder's sub-folders, items and their files in one paged request.

Adds ``GET /folder/{id}/listing`` (see ``rest.py``). The module stays light at import: Girder's
plugin registry imports every installed plugin's entry point, loaded or not.
"""
from girder.plugin import GirderPlugin

__version__ = '1.0.0'


class MountListingPlugin(GirderPlugin):
    DISPLAY_NAME = 'girder-mount listing'

    def load(self, info):
        from .rest import addListingRoute

        addListingRoute(info['apiRoot'].folder)
