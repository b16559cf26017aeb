"""REST endpoints for lists, contacts and imports: validate, call a service, serialise."""

from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Prefetch
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response

from contacts import segments, selectors, services
from contacts.api.serializers import (
    ContactImportColumnSerializer,
    ContactImportConfirmSerializer,
    ContactImportCreateSerializer,
    ContactImportDetailSerializer,
    ContactImportProgressSerializer,
    ContactImportSerializer,
    ContactSerializer,
    CustomFieldSerializer,
    MailingListSerializer,
    SegmentCountResultSerializer,
    SegmentCountSerializer,
    SegmentSerializer,
    SuppressionSerializer,
    drf_validation_error,
)
from contacts.models import Contact, CustomField, MailingList, Segment, Subscription, Suppression
from contacts.services import fields as fields_service
from contacts.services import suppression as suppression_service


class MailingListViewSet(viewsets.ModelViewSet):
    """Lists. Deleting one removes its subscriptions and imports; the contacts stay."""

    serializer_class = MailingListSerializer
    queryset = MailingList.objects.order_by("id")

    def perform_create(self, serializer):
        try:
            serializer.instance = services.mailing_list_create(**serializer.validated_data)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from None

    def perform_update(self, serializer):
        try:
            serializer.instance = services.mailing_list_update(
                serializer.instance, **serializer.validated_data
            )
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from None

    def perform_destroy(self, instance):
        services.mailing_list_delete(instance)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("email", OpenApiTypes.STR, description="Exact address, case ignored."),
            OpenApiParameter(
                "list", OpenApiTypes.INT, description="Only contacts in this list (its id)."
            ),
            OpenApiParameter("status", OpenApiTypes.STR, enum=Contact.Status.values),
            OpenApiParameter("q", OpenApiTypes.STR, description="Search address and names."),
        ]
    )
)
class ContactViewSet(viewsets.ModelViewSet):
    """Contacts. ``lists`` holds the ids of the lists a contact is subscribed to; setting it
    subscribes and unsubscribes, but never re-subscribes someone who left a list."""

    serializer_class = ContactSerializer

    def get_queryset(self):
        params = self.request.query_params
        mailing_list = params.get("list")
        if mailing_list is not None and not mailing_list.isdigit():
            raise serializers.ValidationError({"list": _("Give a list id (a number).")})
        status_param = params.get("status") or None
        if status_param is not None and status_param not in Contact.Status.values:
            raise serializers.ValidationError(
                {
                    "status": _("Status must be one of: %(values)s.")
                    % {"values": ", ".join(Contact.Status.values)}
                }
            )
        contacts = selectors.contact_list(
            query=params.get("q", ""),
            mailing_list=int(mailing_list) if mailing_list is not None else None,
            status=status_param,
            email=params.get("email"),
        )
        return contacts.prefetch_related(
            Prefetch(
                "subscriptions",
                queryset=Subscription.objects.filter(status=Subscription.Status.SUBSCRIBED),
                to_attr="active_subscriptions",
            )
        )

    def perform_create(self, serializer):
        try:
            serializer.instance = services.contact_create(**serializer.validated_data)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from None

    def perform_update(self, serializer):
        try:
            serializer.instance = services.contact_update(
                serializer.instance, **serializer.validated_data
            )
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from None
        # The prefetched subscriptions predate the update.
        serializer.instance.__dict__.pop("active_subscriptions", None)

    def perform_destroy(self, instance):
        services.contact_delete(instance)


class ContactImportViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """CSV imports, through the same service as the web page. Create one by uploading a
    file with an optional ``mapping``, ``mode`` and ``left_policy``; it runs in the
    background, so poll ``progress/`` until ``running`` is false, then read the import for
    its counts and the refused rows. With ``review`` it waits (status ``mapping``) until
    ``POST mapping/``; ``columns/`` shows each column with sample values and the guess."""

    parser_classes = [MultiPartParser, FormParser, JSONParser]

    def get_queryset(self):
        if self.action == "retrieve":
            return selectors.contact_import_list().defer(None)
        return selectors.contact_import_list()

    def get_serializer_class(self):
        if self.action == "list":
            return ContactImportSerializer
        if self.action == "create":
            return ContactImportCreateSerializer
        return ContactImportDetailSerializer

    @extend_schema(
        request={"multipart/form-data": ContactImportCreateSerializer},
        responses={201: ContactImportDetailSerializer},
    )
    def create(self, request, *args, **kwargs):
        serializer = ContactImportCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            contact_import = services.contact_import_create(
                serializer.validated_data["list"],
                serializer.validated_data["file"],
                request.user,
                mapping=serializer.validated_data.get("mapping"),
                review=serializer.validated_data["review"],
                mode=serializer.validated_data["mode"],
                left_policy=serializer.validated_data["left_policy"],
            )
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from None
        return Response(
            ContactImportDetailSerializer(contact_import).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(request=None, responses={200: ContactImportColumnSerializer(many=True)})
    @action(detail=True, methods=["get"])
    def columns(self, request, pk=None):
        try:
            columns = services.contact_import_columns(self.get_object())
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from None
        return Response(ContactImportColumnSerializer(columns, many=True).data)

    @extend_schema(
        request=ContactImportConfirmSerializer, responses={200: ContactImportDetailSerializer}
    )
    @action(detail=True, methods=["post"], parser_classes=[JSONParser])
    def mapping(self, request, pk=None):
        payload = ContactImportConfirmSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            contact_import = services.contact_import_confirm(
                self.get_object(),
                payload.validated_data.get("mapping", {}),
                mode=payload.validated_data.get("mode"),
                left_policy=payload.validated_data.get("left_policy"),
            )
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from None
        return Response(ContactImportDetailSerializer(contact_import).data)

    @extend_schema(request=None, responses={200: ContactImportProgressSerializer})
    @action(detail=True, methods=["get"])
    def progress(self, request, pk=None):
        return Response(selectors.contact_import_progress(self.get_object()))

    @extend_schema(request=None, responses={200: ContactImportDetailSerializer})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        try:
            contact_import = services.contact_import_cancel(self.get_object())
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from None
        return Response(ContactImportDetailSerializer(contact_import).data)


class CustomFieldViewSet(viewsets.ModelViewSet):
    """Custom fields: typed contact fields stored in ``attributes`` under their ``key``.

    Types: text, number, date (ISO ``YYYY-MM-DD``), boolean, choice (with ``options``).
    The key cannot change. Deleting a field keeps the contacts' values, untyped."""

    serializer_class = CustomFieldSerializer
    queryset = CustomField.objects.order_by("id")

    def perform_create(self, serializer):
        try:
            serializer.instance = fields_service.custom_field_create(**serializer.validated_data)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from None

    def perform_update(self, serializer):
        try:
            serializer.instance = fields_service.custom_field_update(
                serializer.instance, **serializer.validated_data
            )
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from None

    def perform_destroy(self, instance):
        fields_service.custom_field_delete(instance)


class SegmentViewSet(viewsets.ModelViewSet):
    """Segments: contacts matching a rule, counted live. ``POST segments/count/`` counts a
    rule without saving it (what the rule builder does as you type)."""

    serializer_class = SegmentSerializer
    queryset = Segment.objects.order_by("id")

    def perform_create(self, serializer):
        try:
            serializer.instance = services.segment_create(**serializer.validated_data)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from None

    def perform_update(self, serializer):
        try:
            serializer.instance = services.segment_update(
                serializer.instance, **serializer.validated_data
            )
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from None

    def perform_destroy(self, instance):
        services.segment_delete(instance)

    @extend_schema(request=SegmentCountSerializer, responses={200: SegmentCountResultSerializer})
    @action(detail=False, methods=["post"])
    def count(self, request):
        payload = SegmentCountSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        try:
            clean = segments.segment_rules_clean(payload.validated_data["rules"])
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from None
        return Response(selectors.segment_count(clean))


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("q", OpenApiTypes.STR, description="Part of the address or domain."),
            OpenApiParameter("reason", OpenApiTypes.STR, enum=Suppression.Reason.values),
        ]
    )
)
class SuppressionViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The suppression list: addresses and domains no campaign is sent to. Contacts who
    unsubscribed, bounced or complained are suppressed by their status as well."""

    serializer_class = SuppressionSerializer

    def get_queryset(self):
        params = self.request.query_params
        return selectors.suppression_list(
            query=params.get("q", ""), reason=params.get("reason") or None
        )

    def perform_create(self, serializer):
        try:
            serializer.instance = suppression_service.suppression_add(**serializer.validated_data)
        except DjangoValidationError as exc:
            raise drf_validation_error(exc) from None

    def perform_destroy(self, instance):
        suppression_service.suppression_remove(instance)
