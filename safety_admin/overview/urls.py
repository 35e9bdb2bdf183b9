from django.urls import path

from safety_admin.overview import views

app_name = "overview"

urlpatterns = [
    path("", views.index, name="index"),
]
