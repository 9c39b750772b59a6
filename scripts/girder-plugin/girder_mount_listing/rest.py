"""``GET /folder/{id}/listing``: read-only, with the access checks of Girder's own listing routes."""
from girder.api import access
from girder.api.describe import Description, autoDescribeRoute
from girder.api.rest import boundHandler, setResponseHeader
from girder.constants import AccessType, TokenScope
from girder.exceptions import RestException
from girder.models.file import File
from girder.models.folder import Folder
from girder.models.item import Item

from . import __version__
from .listing import listingPage

PLUGIN = 'girder-mount-listing'
DEFAULT_LIMIT = 1000
MAX_LIMIT = 10000


@access.public(scope=TokenScope.DATA_READ)
@boundHandler
@autoDescribeRoute(
    Description("List a folder's sub-folders, then its items with their files, in one page.")
    .notes('Added by the girder-mount-listing plugin. The page is a window [offset, offset + '
           'limit) over the readable sub-folders sorted by _id followed by the items sorted by '
           '_id. Documents are filtered as by GET /folder, GET /item and GET /item/{id}/files; '
           'each item has a "files" array sorted by name. limit=0 answers only the totals and '
           'the plugin version. Girder-Total-Count is totalFolders + totalItems.')
    .modelParam('id', 'The folder to list.', model=Folder, level=AccessType.READ)
    .param('limit', 'Entries (folders plus items) in the page, 0 to %d.' % MAX_LIMIT,
           dataType='integer', required=False, default=DEFAULT_LIMIT)
    .param('offset', 'Entries to skip.', dataType='integer', required=False, default=0)
    .errorResponse('ID was invalid, or limit or offset is out of range.')
    .errorResponse('Read access was denied on the folder.', 403)
)
def getListing(self, folder, limit, offset):
    if limit < 0 or limit > MAX_LIMIT:
        raise RestException('limit must be between 0 and %d.' % MAX_LIMIT)
    if offset < 0:
        raise RestException('offset must not be negative.')
    user = self.getCurrentUser()
    page = listingPage(folder, user, offset, limit)
    folderModel, itemModel, fileModel = Folder(), Item(), File()
    items = []
    for item, files in page['items']:
        doc = itemModel.filter(item, user)
        doc['files'] = [fileModel.filter(file, user) for file in files]
        items.append(doc)
    total = page['totalFolders'] + page['totalItems']
    setResponseHeader('Girder-Total-Count', total)
    return {
        'plugin': PLUGIN,
        'version': __version__,
        'offset': offset,
        'limit': limit,
        'totalFolders': page['totalFolders'],
        'totalItems': page['totalItems'],
        'folders': [folderModel.filter(sub, user) for sub in page['folders']],
        'items': items,
    }


def addListingRoute(folderResource):
    folderResource.route('GET', (':id', 'listing'), getListing)
