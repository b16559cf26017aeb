"""Helpers shared by the contacts tests that drive the import pages."""

from __future__ import annotations


def confirm_mapping(client, response, overrides=None, **extra):
    """Post the mapping page an upload redirected to: the guesses, with ``overrides``.

    ``overrides`` maps a column index to its target; ``extra`` adds form fields (``mode``,
    ``col_N_key``, ...). Returns the mapping page's response.
    """
    page = client.get(response["Location"])
    assert page.status_code == 200, page.content.decode()
    form = page.context["form"]
    data = {name: form[name].initial for name in form.fields if form[name].initial is not None}
    for index, target in (overrides or {}).items():
        data[f"col_{index}"] = target
    data.update(extra)
    return client.post(response["Location"], data)
