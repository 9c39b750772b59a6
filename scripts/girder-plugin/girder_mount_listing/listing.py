"""One page of a folder's listing, in a constant number of database queries.

The page is a window ``[offset, offset + limit)`` over the concatenation
[readable sub-folders sorted by _id] + [items sorted by _id]. Each item carries its files.
Queries: count sub-folders, count items, find the page's sub-folders, find the page's items,
find all their files at once (``itemId $in``): at most five, whatever the page size.
"""
from girder.constants import AccessType, SortDir
from girder.models.file import File
from girder.models.folder import Folder

BY_ID = [('_id', SortDir.ASCENDING)]


def subFolderCursor(folder, user, offset, limit):
    """The same query and permission filter as ``GET /folder?parentType=folder&parentId=``."""
    return Folder().findWithPermissions(
        {'parentId': folder['_id'], 'parentCollection': 'folder'},
        user=user, level=AccessType.READ, offset=offset, limit=limit, sort=BY_ID)


def itemCursor(folder, offset, limit):
    """The same query as ``GET /item?folderId=``: items are readable wherever their folder is."""
    return Folder().childItems(folder, offset=offset, limit=limit, sort=BY_ID)


def filesByItem(items):
    """Every file of these items in one query, grouped by item, each group sorted by (name, _id)."""
    groups = {item['_id']: [] for item in items}
    if not groups:
        return groups
    for file in File().find({'itemId': {'$in': list(groups)}}):
        group = groups.get(file['itemId'])
        if group is not None:
            group.append(file)
    for group in groups.values():
        group.sort(key=lambda file: (file.get('name', ''), file['_id']))
    return groups


def listingPage(folder, user, offset, limit):
    """The raw documents of one page plus the totals; ``limit == 0`` fetches only the totals."""
    folders = subFolderCursor(folder, user, offset, limit)
    totalFolders = folders.count()   # count() ignores the cursor's offset and limit
    totalItems = itemCursor(folder, 0, 0).count()

    pageFolders = []
    if limit > 0 and offset < totalFolders:
        pageFolders = list(folders)
    pageItems = []
    itemLimit = limit - len(pageFolders)
    if itemLimit > 0 and offset + len(pageFolders) < totalFolders + totalItems:
        pageItems = list(itemCursor(folder, max(0, offset - totalFolders), itemLimit))
    files = filesByItem(pageItems)
    return {
        'totalFolders': totalFolders,
        'totalItems': totalItems,
        'folders': pageFolders,
        'items': [(item, files[item['_id']]) for item in pageItems],
    }
