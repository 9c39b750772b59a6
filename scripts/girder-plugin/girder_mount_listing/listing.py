"""One page of a folder's listing, in a constant number of database queries.

The page is a window ``[offset, offset + limit)`` over the concatenation
[readable sub-folders sorted by _id] + [items sorted by _id]. Each item carries its files.
Queries: find the page's sub-folders, find the page's items, find all their files at once
(``itemId $in``), and count sub-folders or items only where the page does not tell how many there
are (it is full, or starts past them): three for a folder that fits in one page, at most five.
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
    pageFolders = list(subFolderCursor(folder, user, offset, limit)) if limit > 0 else []
    if 0 < len(pageFolders) < limit or (limit > 0 and offset == 0 and not pageFolders):
        totalFolders = offset + len(pageFolders)   # the page reached past the last sub-folder
    else:
        totalFolders = subFolderCursor(folder, user, 0, 0).count()

    itemOffset = max(0, offset - totalFolders)
    itemLimit = limit - len(pageFolders)
    pageItems = list(itemCursor(folder, itemOffset, itemLimit)) if itemLimit > 0 else []
    if 0 < len(pageItems) < itemLimit or (itemLimit > 0 and itemOffset == 0 and not pageItems):
        totalItems = itemOffset + len(pageItems)   # the page reached past the last item
    else:
        totalItems = itemCursor(folder, 0, 0).count()

    files = filesByItem(pageItems)
    return {
        'totalFolders': totalFolders,
        'totalItems': totalItems,
        'folders': pageFolders,
        'items': [(item, files[item['_id']]) for item in pageItems],
    }
