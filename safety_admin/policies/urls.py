from django.urls import path

from safety_admin.policies import views

app_name = "policies"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("lists/<int:pk>/", views.blocklist_detail, name="blocklist-detail"),
    path("lists/<int:pk>/toggle", views.blocklist_toggle, name="blocklist-toggle"),
    path("preview/", views.preview, name="preview"),
    path("publish/", views.publish, name="publish"),
    path("versions/", views.version_list, name="version-list"),
    path("versions/<int:number>/", views.version_detail, name="version-detail"),
    path("versions/<int:number>/rollback", views.version_rollback, name="version-rollback"),
    path("import/", views.import_file, name="import"),
    path("proposals/", views.proposal_list, name="proposal-list"),
    path("proposals/<int:pk>/accept", views.proposal_accept, name="proposal-accept"),
    path("proposals/<int:pk>/reject", views.proposal_reject, name="proposal-reject"),
]
