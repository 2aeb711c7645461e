def test_api_needs_a_token_and_answers_json(client, auth):
    assert client.get("/api/v1/contacts").status_code == 401
    response = client.get("/api/v1/contacts", headers=auth)
    assert response.status_code == 200
    assert response.json == {"items": []}
