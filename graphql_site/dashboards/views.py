from django.http import HttpResponse

PAGES = ("business", "quality", "pipeline", "cost", "lineage")


def page(request, name):
    return HttpResponse(name)
