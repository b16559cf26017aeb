from rest_framework import viewsets

from contacts.models import ContactImport, MailingList, Contact


class MailingListViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = MailingList.objects.all()


class ContactViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = Contact.objects.all()


class ContactImportViewSet(viewsets.ReadOnlyModelViewSet):
    queryset = ContactImport.objects.all()
