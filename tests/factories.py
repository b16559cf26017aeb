from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from campaigns.models import Campaign
from contacts.models import Contact, MailingList, Subscription


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.com")
    password = factory.django.Password("correct horse battery staple")
    is_staff = True
    is_superuser = True


class MailingListFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MailingList

    name = factory.Sequence(lambda n: f"List {n}")


class ContactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Contact

    email = factory.Sequence(lambda n: f"person{n}@example.org")
    first_name = factory.Sequence(lambda n: f"First{n}")
    last_name = "Doe"
    attributes = factory.LazyFunction(lambda: {"city": "Lisbon"})


class SubscriptionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Subscription

    contact = factory.SubFactory(ContactFactory)
    mailing_list = factory.SubFactory(MailingListFactory)


class CampaignFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Campaign
        skip_postgeneration_save = True

    name = factory.Sequence(lambda n: f"Campaign {n}")
    subject = "Hello {{ contact.first_name|default:'friend' }}"
    from_name = "Mailcenter Team"
    from_email = "news@example.com"
    html = (
        "<html><body><p>Hi {{ contact.first_name|default:'friend' }} from "
        "{{ contact.attributes.city }}!</p>"
        '<p><a href="https://example.com/offer">Offer</a> '
        '<a href="https://example.com/blog?a=1&amp;b=2">Blog</a></p>'
        '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a> '
        '<a href="{{ webview_url }}">View online</a></p></body></html>'
    )

    @factory.post_generation
    def lists(self, create, extracted, **kwargs):
        if create and extracted:
            self.lists.set(extracted)
